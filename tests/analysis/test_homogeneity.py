import numpy as np

from agrec.analysis.homogeneity import distinct_prefixes

CODES = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1]])


def test_distinct_prefixes_hand_counted():
    beams = np.array([[0, 1, 2, -1],    # a-prefixes {0}; ab {00, 01}; abc 3 items
                      [0, 3, 4, 2],     # a {0, 1}; ab {00, 10, 11, 01}; abc 4
                      [-1, -1, -1, -1]])
    np.testing.assert_array_equal(distinct_prefixes(beams, CODES), [[1, 2, 3], [2, 4, 4], [0, 0, 0]])
