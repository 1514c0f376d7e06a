"""The pretexts, one module each (`gan`: the paper's cGAN, `l1`, `classification` with `zhang`'s colour
maths, `multitask`, `supervised`), what every one of them is to the rest of the package (`pretext`),
and the table that names them (`registry`, which imports no TensorFlow)."""
