from escalator.shared.db import progress_metadata
from escalator.shared.migrations import run_env
from escalator.sla_timer.models import Base

run_env(Base.metadata, progress_metadata)
