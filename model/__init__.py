"""mmim: multimodal sentiment analysis with hierarchical MI maximisation (MMIM)."""
