"""`validate`: the ordered checks (the checker's verdict, structure, quality gate)."""
