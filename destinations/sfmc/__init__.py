"""What both Salesforce Marketing Cloud kinds share: the client (`client.SfmcClient`, the
only module that speaks SFMC HTTP), the settings and options of an SFMC account
(`settings`), identities and payload helpers (`common`) and SFMC's messages.

The kinds themselves are destinations.sfmc_data_extension and destinations.sfmc_contacts.
"""
