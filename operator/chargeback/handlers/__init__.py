"""kopf handlers: thin entry points that read an object, call one service and write status."""
