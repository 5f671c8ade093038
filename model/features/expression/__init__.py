"""The facial-expression CNN (weights/expression): its training on FER2013 (train) and its
evaluation through the front end (evaluate)."""
