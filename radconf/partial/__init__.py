"""Training from incomplete clinical structure sets: which structures each case has (``structures``), the marginal
Dice + cross-entropy loss (``loss``) and validation on the annotated structures only (``validation``)."""
