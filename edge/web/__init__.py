"""The local web page and JSON API (``face-edge serve``, or ``web:`` in the config for the service).

- :mod:`edge.web.server`: HTTP routes, the token and the limits (Python's threaded HTTP server);
- :mod:`edge.web.app`: what the routes do (status, people, enrollment, events, recognition);
- :mod:`edge.web.live`: the live view (a frame sink, JPEG encoded off the loop's thread);
- :mod:`edge.web.events`: the recent events with face thumbnails (an integration of the hub);
- :mod:`edge.web.auth`: token file and request checks; :mod:`edge.web.uploads`: safe uploads;
- ``static/``: the page itself (HTML, CSS, plain JavaScript).
"""
