"""A user metric as a user would write one: module:function(outputs, targets) -> float."""
import numpy as np


def keypoint_pck(outputs, targets):
    """Fraction of keypoints within 0.5 of their target (higher is better)."""
    return float(np.mean(np.abs(outputs[0].reshape(targets.shape) - targets) < 0.5))
