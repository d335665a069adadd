"""Salesforce Marketing Cloud connectors: data extension rows and contact attributes.

`client.SfmcClient` is the only module that speaks SFMC HTTP; the two connectors
(`data_extension.DataExtensionConnector`, `contacts.ContactsConnector`) turn the engine's
membership changes into SFMC calls and SFMC's answers into per-user outcomes.
"""
