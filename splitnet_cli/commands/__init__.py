"""One module per ``splitnet`` command group; each has ``add_parser(subparsers)``, which registers its
sub-command(s) with ``func=`` set to the function that runs it."""

from splitnet_cli.commands import (
    checkpoint,
    client,
    data,
    demo,
    eval,
    link,
    models,
    profile,
    serve,
    simulate,
    train,
)

# in the order ``splitnet --help`` lists them
COMMANDS = (models, train, data, checkpoint, profile, link, simulate, eval, serve, client, demo)

__all__ = ["COMMANDS"]
