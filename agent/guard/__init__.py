"""`guard`: back up, run the update, validate, keep or roll back."""
