"""Fine-tuning: one training loop for both stages, from one CPU process to many nodes."""
