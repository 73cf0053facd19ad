"""What Home Assistant accepts as an MQTT discovery message, as JSON Schemas (checked with ``jsonschema``).

Transcribed from Home Assistant's documentation of MQTT discovery and of the MQTT binary sensor and
sensor platforms (home-assistant.io/integrations/mqtt, /binary_sensor.mqtt, /sensor.mqtt), and from
its schema code (homeassistant/components/mqtt/schemas.py: MQTT_ENTITY_DEVICE_INFO_SCHEMA,
MQTT_ORIGIN_INFO_SCHEMA, the availability schemas; binary_sensor.py and sensor.py PLATFORM_SCHEMA):

- discovery topic ``<prefix>/<component>/[<node_id>/]<object_id>/config``, node and object ids of
  ``[a-zA-Z0-9_-]``;
- ``state_topic`` required; topics are non-empty UTF-8 without ``+`` / ``#`` to publish to and
  without NUL;
- ``availability_topic`` and ``availability`` exclude each other; payloads are strings;
- ``device`` needs at least one of ``identifiers`` / ``connections``; ``origin`` needs ``name``;
- device classes from the binary_sensor / sensor enumerations; ``state_class`` one of measurement,
  measurement_angle, total, total_increasing; ``entity_category`` config or diagnostic;
- sensor rules from sensor.py's validation: ``options`` only with device class ``enum``; an
  ``enum`` sensor has no unit and no state class.

Home Assistant drops keys it does not know (``extra=vol.REMOVE_EXTRA``) with a warning; here an
unknown key is an error, so a typo cannot slip through.
"""
from __future__ import annotations

import re
from typing import Any

import jsonschema

TOPIC_RE = re.compile(r"^(?P<prefix>[^+#]+?)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
                      r"(?P<object_id>[a-zA-Z0-9_-]+)/config$")

BINARY_SENSOR_CLASSES = [
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"]
SENSOR_CLASSES = [
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery", "blood_glucose_concentration",
    "carbon_dioxide", "carbon_monoxide", "conductivity", "current", "data_rate", "data_size", "date", "distance",
    "duration", "energy", "energy_distance", "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance",
    "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph",
    "pm1", "pm10", "pm25", "pm4", "power", "power_factor", "precipitation", "precipitation_intensity", "pressure",
    "reactive_energy", "reactive_power", "signal_strength", "sound_pressure", "speed", "sulphur_dioxide",
    "temperature", "timestamp", "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage",
    "volume", "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed"]
STATE_CLASSES = ["measurement", "measurement_angle", "total", "total_increasing"]

_TOPIC = {"type": "string", "minLength": 1, "pattern": r"^[^\u0000]*$"}
_PUBLISH_TOPIC = {"type": "string", "minLength": 1, "pattern": r"^[^+#\u0000]*$"}
_DEVICE = {
    "type": "object", "additionalProperties": False,
    "properties": {"identifiers": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                   "connections": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                              "items": {"type": "string"}}},
                   "manufacturer": {"type": "string"}, "model": {"type": "string"}, "model_id": {"type": "string"},
                   "name": {"type": "string"}, "hw_version": {"type": "string"},
                   "serial_number": {"type": "string"}, "sw_version": {"type": "string"},
                   "via_device": {"type": "string"}, "suggested_area": {"type": "string"},
                   "configuration_url": {"type": "string"}},
    "anyOf": [{"required": ["identifiers"], "properties": {"identifiers": {"minLength": 1, "minItems": 1}}},
              {"required": ["connections"], "properties": {"connections": {"minItems": 1}}}],
}
_ORIGIN = {"type": "object", "additionalProperties": False, "required": ["name"],
           "properties": {"name": {"type": "string"}, "sw_version": {"type": "string"},
                          "support_url": {"type": "string"}}}
_COMMON = {
    "availability": {"type": "array", "items": {
        "type": "object", "required": ["topic"], "additionalProperties": False,
        "properties": {"topic": _TOPIC, "payload_available": {"type": "string"},
                       "payload_not_available": {"type": "string"}, "value_template": {"type": "string"}}}},
    "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability_template": {"type": "string"},
    "availability_topic": _TOPIC,
    "payload_available": {"type": "string"},
    "payload_not_available": {"type": "string"},
    "device": _DEVICE,
    "origin": _ORIGIN,
    "enabled_by_default": {"type": "boolean"},
    "encoding": {"type": "string"},
    "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": {"type": "string"},
    "expire_after": {"type": "integer", "minimum": 0},
    "force_update": {"type": "boolean"},
    "icon": {"type": "string", "pattern": r"^[a-z0-9-]+:[a-z0-9-]+$"},
    "json_attributes_template": {"type": "string"},
    "json_attributes_topic": _TOPIC,
    "name": {"type": ["string", "null"]},
    "object_id": {"type": "string"},
    "default_entity_id": {"type": "string"},
    "platform": {"type": "string"},
    "qos": {"enum": [0, 1, 2]},
    "state_topic": _TOPIC,
    "unique_id": {"type": "string", "minLength": 1},
    "value_template": {"type": "string"},
}
_NOT_BOTH_AVAILABILITY = {"not": {"required": ["availability", "availability_topic"]}}

BINARY_SENSOR = {
    "type": "object", "additionalProperties": False, "required": ["state_topic"],
    "properties": {**_COMMON, "device_class": {"enum": BINARY_SENSOR_CLASSES},
                   "off_delay": {"type": "integer", "minimum": 0},
                   "payload_off": {"type": "string"}, "payload_on": {"type": "string"}},
    "allOf": [_NOT_BOTH_AVAILABILITY],
}
SENSOR = {
    "type": "object", "additionalProperties": False, "required": ["state_topic"],
    "properties": {**_COMMON, "device_class": {"enum": SENSOR_CLASSES}, "state_class": {"enum": STATE_CLASSES},
                   "unit_of_measurement": {"type": "string"}, "suggested_display_precision": {"type": "integer"},
                   "options": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                   "last_reset_value_template": {"type": "string"}},
    "allOf": [_NOT_BOTH_AVAILABILITY,
              {"if": {"required": ["options"]}, "then": {"required": ["device_class"],
                                                         "properties": {"device_class": {"const": "enum"}}}},
              {"if": {"required": ["device_class"], "properties": {"device_class": {"const": "enum"}}},
               "then": {"required": ["options"], "not": {"anyOf": [{"required": ["unit_of_measurement"]},
                                                                  {"required": ["state_class"]}]}}}],
}
SCHEMAS = {"binary_sensor": BINARY_SENSOR, "sensor": SENSOR}


def check_discovery(topic: str, payload: dict[str, Any], prefix: str = "homeassistant") -> str:
    """Raise AssertionError / jsonschema.ValidationError unless Home Assistant accepts this discovery message;
    return its component."""
    m = TOPIC_RE.match(topic)
    assert m is not None, f"{topic}: not a discovery config topic"
    assert m["prefix"] == prefix, topic
    component = m["component"]
    assert component in SCHEMAS, f"{topic}: component {component} is not checked here"
    jsonschema.validate(payload, SCHEMAS[component])
    return component


def state_is_valid(component: str, payload: dict[str, Any], state: str) -> bool:
    """Return True when ``state`` (a state topic's payload) is a state this entity understands."""
    if component == "binary_sensor":
        return state in (payload.get("payload_on", "ON"), payload.get("payload_off", "OFF"))
    if payload.get("device_class") == "enum":
        return state in payload["options"]
    if payload.get("state_class") == "measurement":
        try:
            float(state)
        except ValueError:
            return False
    return True
