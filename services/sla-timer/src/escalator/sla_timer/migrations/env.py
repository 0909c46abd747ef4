from escalator.shared.migrations import run_env
from escalator.sla_timer.models import Base

run_env(Base.metadata)
