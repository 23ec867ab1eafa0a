"""`kronos evaluate`: is the fine-tuned model worth it? Models and baselines scored on the same windows."""
