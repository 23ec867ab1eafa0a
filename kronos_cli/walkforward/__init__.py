"""Walk-forward evaluation: folds planned on the market's calendar, each a point-in-time run of prep, training and
forecasting, stitched into one out-of-sample record and scored as one."""
