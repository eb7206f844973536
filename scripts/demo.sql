SELECT billing.billing_period('2026-01-15','2026-02-15');
