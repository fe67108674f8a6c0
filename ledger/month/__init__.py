"""The month of a convênio: rollover, balance restorations, duplicatas and their settlement,
overdue blocking, the scheduler and the record of job runs."""
