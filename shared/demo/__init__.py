"""``promptloop demo``: the whole loop on one machine (traffic, degradation, alert, optimization,
validation, rollout, promotion, a rollback), unattended."""
