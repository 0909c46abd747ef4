from escalator.notifier.models import Base
from escalator.shared.db import progress_metadata
from escalator.shared.migrations import run_env

run_env(Base.metadata, progress_metadata)
