from escalator.router.models import Base
from escalator.shared.migrations import run_env

run_env(Base.metadata)
