"""Notifications to patients, by responsibility.

- `models`: the outbox table (`Notification`) and its enums.
- `outbox`: putting messages in the outbox (`queue`) and publishing send tasks after commit.
- `sender`: claiming a row, sending it through its channel, retries with backoff, reclaiming
  rows whose worker died (`send`, `send_due`, `reclaim_stuck`).
- `texts`: what a message says (`compose`).
- `scans`: the beat's scan that decides which messages are due (`scan`).
- `inbound`: patients' SMS replies, matched by phone and acted on once per message id
  (`receive`); the provider's format and signature are the SMS backend's (scheduling.channels).

Exactly once, as far as it can be had:

- Creating: a message exists as an outbox row before anything is sent, inserted with
  ON CONFLICT DO NOTHING on the unique key (kind, subject, channel, patient). However many
  scans, requests or retries decide a message is due, one row results.
- Sending: a worker claims a row with a conditional UPDATE (pending and due -> sending) and
  sends only when that UPDATE changed the row; of two workers (or one task delivered twice)
  exactly one sends. It then records `sent` in its own short statement, right after the channel
  accepted the message.
- Nothing depends on Redis keeping a message: tasks are published after commit, a publish that
  fails is only logged, and the beat scan sends every due row from the database state and
  reclaims rows whose worker died mid-send.

The one duplicate that cannot be ruled out: a worker that dies after the provider accepted the
message and before its UPDATE to `sent` commits leaves the row `sending`; it is reclaimed after
NOTIFICATION_CLAIM_TIMEOUT_SECONDS and sent once more. At most one repeat per such death, only
for the row that worker was sending at that moment. Each message carries the row's id as its
reference (SMS) or Message-ID (email), so a provider or mail system that deduplicates on it
closes even that window.

This package's __init__ imports nothing: scheduling.models loads `models` from here, so the
modules that need sessions and series are imported by name where they are used.
"""
