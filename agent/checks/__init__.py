"""Is this checkpoint safe and sound? One question, one checker, one recorded verdict.

Every path that lets a file leave the machine or replace a good copy (push, sync, run, repair,
backup, restore from an unverified copy, validate, guard) asks ``verdicts.verdict_for``:

1. ``pregate`` (torch-free, in the caller's process): refuses early what cannot be a checkpoint
   in the form torch and safetensors write (compressed or duplicate zip members, bytes before the
   archive, a safetensors header larger than its file). It only ever refuses.
2. ``child`` (a separate process under hard limits set by ``limits``): torch's own loader,
   ``torch.load(weights_only=True, mmap=True, map_location="cpu")``, or the ``safetensors``
   library, then a finite check through torch, chunk by chunk, so byte order, dtypes and views
   mean what they mean to torch. A limit hit is a refusal that says which limit.
3. ``verdicts``: the result, recorded by sha256 with the checker's version, so every command
   gets the same answer for the same bytes and known files are never loaded twice.
"""
