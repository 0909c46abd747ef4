from pydantic import SecretStr

from escalator.shared.settings import ServiceSettings


class PostmortemSettings(ServiceSettings):
    service_name: str = "postmortem"
    port: int = 8005
    #: ``ESCALATOR_SURVEY_SECRET``: verifies the survey links the notifier signs with the
    #: same secret. Without it the survey endpoint answers 503 (no link can be valid).
    survey_secret: SecretStr | None = None
