"""Fine-tuning the V/L adapters on the simulated dataset: mixed-task data, the training loop, validation."""
