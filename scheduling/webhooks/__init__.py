"""Signed webhooks to the clinic's other tools, by responsibility.

- `rules`: event types, delivery statuses, the retry delay, which addresses a URL may reach.
- `models`: the endpoints (`WebhookEndpoint`) and the delivery outbox (`WebhookDelivery`).
- `outbox`: `emit`, called by every service whose change is an event, inside its transaction;
  the send tasks are published after commit.
- `guard`: the SSRF guard (https only, no loopback/private/link-local/reserved address), asked
  when an endpoint is registered and again before every send, on the addresses it connects to.
- `sender`: claim a delivery by conditional UPDATE, POST it signed (Standard Webhooks), record
  the answer, retry with backoff, reclaim claims of a dead worker (`send`, `send_due`,
  `reclaim_stuck`).
- `services`: registering and deleting endpoints, redelivery.

It lives in scheduling, the lowest app whose changes are events (sessions and series); the
treatments app emits its events (treatment recorded or amended, lot recalled) through the same
`outbox.emit` from above, as it queues notifications. Like scheduling.notifications, this
package's __init__ imports nothing, so scheduling.models can load `models` without a cycle.

Exactly once, as far as HTTP allows: a delivery is a row (with its `webhook-id`, unique) written
in the transaction of the change, so a change that commits has its deliveries and one that rolls
back has none, whatever the broker does. A worker sends a row only after its conditional UPDATE
(pending and due -> sending) changed it; the beat scan sends what the broker lost and reclaims
rows whose worker died. A worker dying between the receiver's answer and the `delivered` UPDATE
means one repeat, with the same `webhook-id`, which is what receivers deduplicate on.
"""
