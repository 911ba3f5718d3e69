"""Settings shared by the per-law test modules."""

import numpy as np
from hypothesis import HealthCheck, settings

#: Derandomized (CI-stable) Hypothesis settings for the law properties.
SETTINGS = settings(derandomize=True, deadline=None, max_examples=20,
                    suppress_health_check=[HealthCheck.too_slow])

#: A log-spaced hyperparameter axis inside the paper's range where the SDE holds.
AXIS = np.geomspace(1e-3, 3e-2, 4)
