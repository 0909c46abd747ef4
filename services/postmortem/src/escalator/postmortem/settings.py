from escalator.shared.settings import ServiceSettings


class PostmortemSettings(ServiceSettings):
    service_name: str = "postmortem"
    port: int = 8005
