from escalator.shared.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    service_name: str = "router"
    port: int = 8002
