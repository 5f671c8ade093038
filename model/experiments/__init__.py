"""Experiments on trained checkpoints: evaluation and summaries (evaluate), the ablation grid
(ablate), the interaction report and its partial information decomposition (interaction_report,
pid), and the TupleInfoNCE summary (tuple_summary). Results JSON and their tables: results/."""
