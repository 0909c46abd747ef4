"""The templates the notifier ships: (event, audience, channel, language) -> (subject, body).

Customer-facing: the acknowledgement with the first-response promise, the periodic
status update and the resolution with the survey link, in English, Portuguese,
Spanish, Italian and Greek. Internal: one English email that carries what an agent or
manager needs to act (link, severity, level, clock, the router's reason). The REST API
overrides any of them, key by key; a missing language falls back to English.
"""

from __future__ import annotations

Key = tuple[str, str, str, str]

_ACK = {
    "en": ("[{{ ticket_id }}] We received your request",
           "Hello {{ recipient_name }},\n\nWe received your request \"{{ subject }}\" and "
           "will reply within {{ promise_hours }} hours.\n\nReference: {{ ticket_id }}\n"),
    "pt": ("[{{ ticket_id }}] Recebemos o seu pedido",
           "Olá {{ recipient_name }},\n\nRecebemos o seu pedido \"{{ subject }}\" e "
           "responderemos dentro de {{ promise_hours }} horas.\n\nReferência: {{ ticket_id }}\n"),
    "es": ("[{{ ticket_id }}] Hemos recibido su solicitud",
           "Hola {{ recipient_name }},\n\nHemos recibido su solicitud \"{{ subject }}\" y "
           "le responderemos en un plazo de {{ promise_hours }} horas.\n\n"
           "Referencia: {{ ticket_id }}\n"),
    "it": ("[{{ ticket_id }}] Abbiamo ricevuto la sua richiesta",
           "Gentile {{ recipient_name }},\n\nabbiamo ricevuto la sua richiesta \"{{ subject }}\" "
           "e risponderemo entro {{ promise_hours }} ore.\n\nRiferimento: {{ ticket_id }}\n"),
    "el": ("[{{ ticket_id }}] Λάβαμε το αίτημά σας",
           "Γεια σας {{ recipient_name }},\n\nΛάβαμε το αίτημά σας \"{{ subject }}\" και θα "
           "απαντήσουμε εντός {{ promise_hours }} ωρών.\n\nΑριθμός αναφοράς: {{ ticket_id }}\n"),
}
_UPDATE = {
    "en": ("[{{ ticket_id }}] Update on your request",
           "Hello {{ recipient_name }},\n\nWe are still working on \"{{ subject }}\"."
           "{% if comment %}\n\n{{ comment }}{% endif %}\n\nWe will keep you informed.\n"),
    "pt": ("[{{ ticket_id }}] Atualização do seu pedido",
           "Olá {{ recipient_name }},\n\nContinuamos a trabalhar em \"{{ subject }}\"."
           "{% if comment %}\n\n{{ comment }}{% endif %}\n\nManteremos o contacto.\n"),
    "es": ("[{{ ticket_id }}] Actualización de su solicitud",
           "Hola {{ recipient_name }},\n\nSeguimos trabajando en \"{{ subject }}\"."
           "{% if comment %}\n\n{{ comment }}{% endif %}\n\nLe mantendremos informado.\n"),
    "it": ("[{{ ticket_id }}] Aggiornamento sulla sua richiesta",
           "Gentile {{ recipient_name }},\n\nstiamo ancora lavorando a \"{{ subject }}\"."
           "{% if comment %}\n\n{{ comment }}{% endif %}\n\nLa terremo aggiornata.\n"),
    "el": ("[{{ ticket_id }}] Ενημέρωση για το αίτημά σας",
           "Γεια σας {{ recipient_name }},\n\nΣυνεχίζουμε να εργαζόμαστε στο \"{{ subject }}\"."
           "{% if comment %}\n\n{{ comment }}{% endif %}\n\nΘα σας κρατάμε ενήμερους.\n"),
}
_RESOLVED = {
    "en": ("[{{ ticket_id }}] Your request is resolved",
           "Hello {{ recipient_name }},\n\nYour request \"{{ subject }}\" is resolved.\n\n"
           "How did we do? Tell us in one click: {{ survey_url }}\n"),
    "pt": ("[{{ ticket_id }}] O seu pedido foi resolvido",
           "Olá {{ recipient_name }},\n\nO seu pedido \"{{ subject }}\" foi resolvido.\n\n"
           "Como correu? Diga-nos com um clique: {{ survey_url }}\n"),
    "es": ("[{{ ticket_id }}] Su solicitud está resuelta",
           "Hola {{ recipient_name }},\n\nSu solicitud \"{{ subject }}\" está resuelta.\n\n"
           "¿Qué tal lo hicimos? Díganoslo con un clic: {{ survey_url }}\n"),
    "it": ("[{{ ticket_id }}] La sua richiesta è stata risolta",
           "Gentile {{ recipient_name }},\n\nla sua richiesta \"{{ subject }}\" è stata "
           "risolta.\n\nCome siamo andati? Ce lo dica con un clic: {{ survey_url }}\n"),
    "el": ("[{{ ticket_id }}] Το αίτημά σας επιλύθηκε",
           "Γεια σας {{ recipient_name }},\n\nΤο αίτημά σας \"{{ subject }}\" επιλύθηκε.\n\n"
           "Πώς τα πήγαμε; Πείτε μας με ένα κλικ: {{ survey_url }}\n"),
}
_INTERNAL = (
    "[{{ severity | upper }}] {{ ticket_id }}: {{ kind }}",
    "{{ summary }}\n\n"
    "Ticket: {{ link }}\n"
    "Severity: {{ severity }}\n"
    "{% if level_name %}Level: {{ level_name }}{% if level is not none %} ({{ level }})"
    "{% endif %}\n{% endif %}"
    "{% if holder %}Held by: {{ holder }}\n{% endif %}"
    "{% if clock %}Clock: {{ clock }} (due {{ due_at }})\n{% endif %}"
    "{% if reason %}Why: {{ reason }}\n{% endif %}"
    "{% if customer_name %}Customer: {{ customer_name }}{% if tier %} ({{ tier }}){% endif %}\n"
    "{% endif %}"
    "You are receiving this as {{ role }}.\n",
)

SHIPPED: dict[Key, tuple[str, str]] = {
    **{(event, "customer", "email", lang): text
       for event in ("ticket.created", "ticket.acknowledged") for lang, text in _ACK.items()},
    **{(event, "customer", "email", lang): text
       for event in ("sla.update_due", "incident_update", "default")
       for lang, text in _UPDATE.items()},
    **{("ticket.resolved", "customer", "email", lang): text for lang, text in _RESOLVED.items()},
    ("default", "internal", "email", "en"): _INTERNAL,
}
LANGUAGES = ("en", "pt", "es", "it", "el")
