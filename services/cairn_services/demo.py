"""The pipeline `cairn demo` runs: make data, split it, train a small model, evaluate it."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from cairn import ArtifactConfig, PipelineRun, pipeline, step


@step
def make_data(rows: int = 500, seed: int = 7) -> Annotated[pd.DataFrame, "demo_dataset"]:
    """A synthetic regression table: three features and a noisy linear target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["age", "income", "score"])
    frame["target"] = frame @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.1, size=rows)
    return frame


@step
def split(
    data: pd.DataFrame, test_fraction: float = 0.2
) -> tuple[Annotated[pd.DataFrame, "demo_train_{date}"], Annotated[pd.DataFrame, "demo_test"]]:
    """Split rows into train and test sets (the train set is named by the run's date)."""
    cut = int(len(data) * (1 - test_fraction))
    return data.iloc[:cut], data.iloc[cut:]


@step
def train(
    train: pd.DataFrame,
) -> Annotated[np.ndarray, ArtifactConfig(name="demo_model", is_model_artifact=True)]:
    """Least-squares weights (with intercept) for the target."""
    features = np.c_[train[["age", "income", "score"]].to_numpy(), np.ones(len(train))]
    weights: np.ndarray = np.linalg.lstsq(features, train["target"].to_numpy(), rcond=None)[0]
    return weights


@step
def evaluate(model: np.ndarray, test: pd.DataFrame) -> Annotated[dict[str, float], "demo_metrics"]:
    """Mean squared error and R² on the held-out rows."""
    features = np.c_[test[["age", "income", "score"]].to_numpy(), np.ones(len(test))]
    error = features @ model - test["target"].to_numpy()
    mse = float(np.mean(error**2))
    return {"mse": mse, "r2": 1 - mse / float(np.var(test["target"].to_numpy())), "rows": len(test)}


@pipeline
def training_pipeline(rows: int = 500, test_fraction: float = 0.2) -> None:
    data = make_data(rows=rows)
    train_set, test_set = split(data, test_fraction=test_fraction)
    model = train(train_set)
    evaluate(model, test_set)


def run_demo() -> PipelineRun:
    return training_pipeline()
