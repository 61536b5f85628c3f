"""tau web: the browser app's static files (ES modules, CSS) and the route that serves them."""
