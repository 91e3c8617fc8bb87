"""The science layer: what the app teaches, as pure data and functions (no Streamlit, no Plotly).

- The canned experiments, small CPU replications of published batch-norm experiments on the bundled 8x8 digits:
  `figure1` (Ioffe & Szegedy's Figure 1), `santurkar` (noisy BN, gradient ICS, the loss landscape) and `sweeps`
  (learning rate, initial weight scale, batch size), built on `experiment_runs` (lockstep training, progress,
  result types) and remembered per process by `result_cache`.
- The papers' numbers (`published`) and what our runs showed next to them, as tables and sentences (`findings`).
- `presets`: the twin-run presets of the live lab; `bn_steps`: one batch-norm forward pass, step by step;
  `learning_aids`: quiz questions, glossary and flashcards.
- Beyond the basics: `depth_gradients` (Yang et al. 2019: BN makes gradients explode at initialization in deep
  plain networks).

It imports from `bnviz.engine` only; `bnviz.figures` draws its results and `bnviz.ui` and the pages show them.
"""
