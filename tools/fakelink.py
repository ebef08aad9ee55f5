"""The fake MQTT link of tests: what an adapter or a charger uses of net.MqttLink (publish,
publish_event, route, subscribe), recording what is sent, and cb() to deliver a message to
the handler routed for its topic, as the link's receive path does."""


class Link:
    connected = True
    connects = 1

    def __init__(self):
        self.sent = []          # ('r', topic, msg) for a reading, ('e', ...) for an event
        self.subs = []
        self.routes = {}

    def publish(self, topic, msg, retain=False):
        self.sent.append(('r', topic, msg))

    def publish_event(self, topic, msg, retain=False):
        self.sent.append(('e', topic, msg))

    def route(self, topic, handler):
        self.routes[topic.encode()] = handler

    def subscribe(self, topic):
        self.subs.append(topic)
        return True

    def cb(self, topic, msg):
        self.routes[topic](msg)
