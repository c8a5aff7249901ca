"""Success-rate evaluation on the fast simulated arm: the model against baselines, ablations, TTA."""
