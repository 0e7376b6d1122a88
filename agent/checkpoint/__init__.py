"""Reading checkpoints in this process (after the checker accepted them): the tensors of a
loaded state dict, chunked values, and the tensor-by-tensor diff."""
