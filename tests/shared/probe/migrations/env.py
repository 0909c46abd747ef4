from escalator.shared.migrations import run_env
from tests.shared.probe.app import metadata

run_env(metadata)
