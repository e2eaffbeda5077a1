"""Analysis helpers for the paper's figures: complementarity (Fig. 1), homogeneity (Fig. 2), t-SNE."""
