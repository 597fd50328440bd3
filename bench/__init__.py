"""The benchmark's library: timing, the measurements, and the tables `benchmark.py` writes.

timing     statistics of repeated calls, interleaved timing, the machine's peak
weights    the model to time: random weights, or a trained run's (read only)
models     one model in JAX beside its PyTorch twin; Figure 1's conv-vs-DSC sweep
ablations  hand-written forms beside the straightforward XLA ones, as data rows
worker     one thread count's measurements, in a process pinned to that many cores
tables     the Markdown tables, the Figure 1 plot and the "Measured on ..." line
"""
