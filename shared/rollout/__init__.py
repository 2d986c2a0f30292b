"""Safe replacement: validate a candidate, back up the incumbent, roll the candidate out step by step
(10 -> 25 -> 50 -> 75 -> 100 %) and promote or roll back on live evidence."""
