"""The seed's real-time optimizer (§6): triggers read from SQL, starts deduplicated per incident, and the
follow-up of each optimization (validate, then deploy or recommend). ``tasks.realtime`` runs it on beat."""
