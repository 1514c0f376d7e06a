"""A fine-tuning run's test scores worked out again from the predictions it saved (per_image.npz), with
scikit-learn's average precision and a confusion matrix read by hand, so that a test compares the scores a
run reports with what its predictions give rather than only checking that they lie in [0, 1]."""

import json
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score


def _mean(values):
    values = np.asarray(values, np.float64)
    return float(values[~np.isnan(values)].mean())


def rescore(run_dir):
    """The test scores of the predictions in `run_dir`/per_image.npz: mAP and per-class AP over the classes
    with a positive (several labels an image), top-1 (one label), or per-class IoU, mIoU and pixel accuracy
    of the summed confusion matrix (segmentation)."""
    with np.load(os.path.join(run_dir, "per_image.npz")) as saved:
        if "confusion" in saved:
            cm = saved["confusion"].sum(axis=0).astype(np.float64)
            hits = np.diag(cm)
            union = cm.sum(axis=0) + cm.sum(axis=1) - hits
            iou = [hits[c] / union[c] if union[c] else np.nan for c in range(len(cm))]
            return dict(iou=iou, mIoU=_mean(iou), pixel_accuracy=hits.sum() / cm.sum(), num_pixels=cm.sum(),
                        num_images=len(saved["confusion"]))
        if "correct" in saved:
            return dict(top1=float(saved["correct"].mean()), num_images=len(saved["correct"]))
        labels, scores = saved["labels"], saved["scores"]
    ap = [average_precision_score(labels[:, c], scores[:, c]) if labels[:, c].any() else np.nan
          for c in range(labels.shape[1])]
    return dict(ap=ap, mAP=_mean(ap), num_images=len(labels))


def assert_scores_match_predictions(run_dir):
    """Checks that metrics.json's test scores of `run_dir` are those of its saved predictions; returns them."""
    with open(os.path.join(run_dir, "metrics.json")) as f:
        test = json.load(f)["test"]
    for key, value in rescore(run_dir).items():
        reported = list(test[key].values()) if isinstance(test[key], dict) else test[key]
        assert reported == pytest.approx(value, nan_ok=True), key
    return test
