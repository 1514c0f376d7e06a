"""Measurements of the package, not part of it: the throughput benchmark (`measure`, `cgan-benchmark`),
the input pipeline from a photo folder against its decoded-image cache (`feed`) and the GPU check
(`gpu`, `cgan-gpu-check`)."""
