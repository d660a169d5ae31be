"""The HTML/PDF report for a court (docs/report.md)."""
