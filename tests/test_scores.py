import math

import numpy as np

from rlkd.scores import confusion_by_language, macro_f1, scores_by_scope, worst_language_f1


def test_macro_f1_matches_hand_computation():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    confusion = confusion_by_language(labels, predictions, np.zeros(6, dtype=int))[0]

    # per-class F1: class 0 = 2*1/(2+2) = 0.5, class 1 = 2*2/(2+3) = 0.8, class 2 = 2*1/(2+1) = 2/3
    assert math.isclose(macro_f1(confusion), (0.5 + 0.8 + 2 / 3) / 3)


def test_absent_class_is_left_out():
    labels = np.array([0, 1, 0, 1])
    predictions = np.array([0, 1, 0, 1])
    confusion = confusion_by_language(labels, predictions, np.zeros(4, dtype=int))[0]

    assert macro_f1(confusion) == 1.0


def test_language_without_examples_is_nan():
    labels = np.array([0, 1, 2])
    predictions = np.array([0, 1, 1])
    confusion = confusion_by_language(labels, predictions, np.array([0, 0, 1]))

    scores = scores_by_scope(confusion)

    assert scores["hi"]["n"] == 0
    assert math.isnan(scores["hi"]["macro_f1"])
    assert scores["all"]["n"] == 3
    assert worst_language_f1(scores) == min(scores["en"]["macro_f1"], scores["es"]["macro_f1"])
