"""Numbers that both the light modules (the registry and its flags, which import no TensorFlow) and
the modules that compute with them need, defined once."""

# Zhang et al. 2016: the annealed-mean temperature T, the soft encoding's nearest bins k and its
# Gaussian sigma (Lab units).
ZHANG_TEMPERATURE = 0.38
ZHANG_SOFT_K = 5
ZHANG_SIGMA = 5.0
