"""What a command does: build over seeds, measure, check, report, publish; search; seed-report reproduction."""
