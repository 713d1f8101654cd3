"""aldlab.data — stage 2: KB + feedback -> leakage-free chat datasets (`aldlab data build`).

Public entry points: `DataConfig`, `build_dataset`, `DatasetReport`, `split_without_leakage`.
Heavy imports (kiwipiepy) happen inside the build, so importing this package is cheap.
"""

from aldlab.data.build import DatasetReport, build_dataset
from aldlab.data.config import DataConfig
from aldlab.data.split import split_without_leakage

__all__ = ["DataConfig", "DatasetReport", "build_dataset", "split_without_leakage"]
