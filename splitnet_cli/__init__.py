"""The ``splitnet`` console command: parses arguments and calls into the packages."""
