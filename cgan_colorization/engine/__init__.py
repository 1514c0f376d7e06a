"""The training engine: the typed options of every command line (`schema`) and of a colorizer run
(`config`), the run itself (`training`) with its callbacks, figures, `tf.distribute` strategy, run-folder
lock and process settings."""
