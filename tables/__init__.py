"""Tables in and out of edgeclf: file types by extension, reading CSV, Parquet, JSON Lines, .npy and stdin in
record batches, columns by name, and the checks on features and labels with their one-line errors.

kinds and messages are pure Python (the small-input path of `edgeclf predict` uses them without pyarrow);
columns, reading and sources need pyarrow; stats needs numpy only. Nothing here imports torch.
"""
