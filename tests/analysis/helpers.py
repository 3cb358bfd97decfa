"""Small models and sentences shared by the analysis tests."""


def sentence(rng, C, T):
    return rng.integers(0, C, T), rng.integers(0, C, T)


def with_biases(ref, rng, scale=0.5):
    """Nonzero biases, so that gates and activations are off their symmetric points."""
    for k in ref.params:
        if k[0] in "bc":
            ref.params[k] = ref.params[k] + rng.normal(0.0, scale, ref.params[k].shape)
    return ref
