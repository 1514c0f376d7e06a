"""What a user runs: the command-line entry points (`cli`, their options in `options`), loading a
colorizer and colorizing photos (`inference`), measuring colorizations (`evaluation`), export to
SavedModel / LiteRT / ONNX (`export`) and the colorization page (`demo`)."""
