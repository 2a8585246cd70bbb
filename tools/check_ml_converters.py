"""Developer tool: LightGBM, XGBoost and scikit-learn models converted to ONNX, run on the CPU
provider, against the source library's own predictions.

    pip install scikit-learn skl2onnx lightgbm xgboost onnxmltools   # not project dependencies
    python tools/check_ml_converters.py
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np


def _data(n=2000, features=20, classes=3, seed=0):
    from sklearn.datasets import make_classification, make_regression

    Xc, yc = make_classification(
        n, features, n_informative=10, n_classes=classes, random_state=seed
    )
    Xb, yb = make_classification(n, features, n_informative=10, n_classes=2, random_state=seed + 1)
    Xr, yr = make_regression(n, features, noise=0.1, random_state=seed)
    return [a.astype(np.float32) for a in (Xc, Xb, Xr)], (yc, yb, yr)


def _models():
    import lightgbm
    import xgboost
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    (Xc, Xb, Xr), (yc, yb, yr) = _data()
    out = []
    for name, est, X, y, kind in [
        (
            "lightgbm multiclass",
            lightgbm.LGBMClassifier(n_estimators=100, verbose=-1),
            Xc,
            yc,
            "clf",
        ),
        ("lightgbm binary", lightgbm.LGBMClassifier(n_estimators=100, verbose=-1), Xb, yb, "clf"),
        ("lightgbm regressor", lightgbm.LGBMRegressor(n_estimators=100, verbose=-1), Xr, yr, "reg"),
        ("xgboost multiclass", xgboost.XGBClassifier(n_estimators=100, max_depth=6), Xc, yc, "clf"),
        ("xgboost binary", xgboost.XGBClassifier(n_estimators=100, max_depth=6), Xb, yb, "clf"),
        ("xgboost regressor", xgboost.XGBRegressor(n_estimators=100, max_depth=6), Xr, yr, "reg"),
        (
            "sklearn random forest",
            RandomForestClassifier(n_estimators=100, random_state=0),
            Xc,
            yc,
            "clf",
        ),
        (
            "sklearn gradient boosting",
            GradientBoostingClassifier(n_estimators=50, random_state=0),
            Xb,
            yb,
            "clf",
        ),
    ]:
        est.fit(X, y)
        out.append((name, est, X, kind))
    return out


def _convert(name, est, X):
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, X.shape[1]]))]
    if name.startswith("lightgbm"):
        from onnxmltools import convert_lightgbm

        return convert_lightgbm(est, initial_types=types, zipmap=False, target_opset=15)
    if name.startswith("xgboost"):
        from onnxmltools import convert_xgboost

        return convert_xgboost(est, initial_types=types, target_opset=15)
    from skl2onnx import to_onnx

    return to_onnx(
        est, X[:1], options={id(est): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3}
    )


def main() -> int:
    warnings.filterwarnings("ignore")
    import tessera

    failures = 0
    for name, est, X, kind in _models():
        try:
            onx = _convert(name, est, X)
        except Exception as exc:  # noqa: BLE001 - a converter's limit is not ours
            print(f"skip {name:28} the converter failed: {type(exc).__name__}: {str(exc)[:150]}")
            continue
        sess = tessera.InferenceSession(onx.SerializeToString())
        t0 = time.perf_counter()
        outs = sess.run(None, {sess.get_inputs()[0].name: X})
        ms = (time.perf_counter() - t0) * 1e3
        if kind == "clf":
            labels, probs = outs[0], outs[1]
            expected_p = est.predict_proba(X)
            wrong = int((labels.ravel() != est.predict(X).ravel()).sum())
            diff = float(np.abs(probs - expected_p).max())
            ok = wrong == 0 and diff < 1e-4
            print(
                f"{'ok  ' if ok else 'FAIL'} {name:28} wrong labels {wrong}/{len(X)}  max |p - p_src| {diff:.1e}  {ms:.1f} ms"
            )
        else:
            pred = outs[0].ravel()
            expected = est.predict(X).ravel()
            diff = float(np.max(np.abs(pred - expected) / (np.abs(expected) + 1)))
            ok = diff < 1e-4
            print(f"{'ok  ' if ok else 'FAIL'} {name:28} max rel diff {diff:.1e}  {ms:.1f} ms")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
